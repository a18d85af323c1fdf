# Invalid upstream_ca
# PEM certificates
bottle "a" {
  image = "x"
  upstream_ca = "not a certificate" # HERE
}
