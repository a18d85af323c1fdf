# Invalid egress host
# port
bottle "a" {
  image = "x"
  egress "api.github.com:8443" {} # HERE
}
