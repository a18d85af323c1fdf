# Incomplete auth block
# token is missing
bottle "a" {
  image = "x"
  egress "api.github.com" {
    auth { # HERE
      scheme = "Bearer"
    }
  }
}
