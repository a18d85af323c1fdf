# Reference to undeclared secret
# Did you mean secret.claude?
secret "claude" {
  env = "T"
}
bottle "a" {
  image = "x"
  agent "claude" {
    auth_token = secret.cluade # HERE
  }
}
