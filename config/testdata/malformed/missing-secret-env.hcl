# Secret not set
# Export it
secret "g" { # HERE
  env = "NOT_SET_ANYWHERE"
}
bottle "a" {
  image = "x"
  env = {
    G = secret.g
  }
}
