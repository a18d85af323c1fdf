# auth_token is claude only
# forward_host_credentials
secret "t" {
  env = "T"
}
bottle "a" {
  image = "x"
  agent "codex" {
    auth_token = secret.t # HERE
  }
}
