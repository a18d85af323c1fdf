# Reference to undeclared secret
# secret "claude" { env = "VAR" }
bottle "a" {
  image = "x"
  agent "claude" {
    auth_token = secret.claude # HERE
  }
}
