# auth needs interception
# decrypts
secret "g" {
  env = "G"
}
bottle "a" {
  image = "x"
  egress "api.github.com" {
    tls = "passthrough"
    auth { # HERE
      scheme = "Bearer"
      token = secret.g
    }
  }
}
