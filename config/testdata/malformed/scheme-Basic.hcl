# Unsupported auth scheme
# "Bearer" or "token"
secret "g" {
  env = "G"
}
bottle "a" {
  image = "x"
  egress "api.github.com" {
    auth {
      scheme = "Basic" # HERE
      token = secret.g
    }
  }
}
