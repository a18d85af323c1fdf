# forward_host_credentials is codex only
# auth_token
bottle "a" {
  image = "x"
  agent "claude" {
    forward_host_credentials = true # HERE
  }
}
