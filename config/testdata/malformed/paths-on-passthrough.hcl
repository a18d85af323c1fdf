# paths need interception
# passthrough
bottle "a" {
  image = "x"
  egress "api.github.com" {
    tls = "passthrough"
    paths = ["/x"] # HERE
  }
}
