# Invalid host key
# ssh-keyscan
bottle "a" {
  image = "x"
  git "app" {
    upstream = "ssh://git@h/o/r.git"
    host_key = "ssh-ed25519 notbase64" # HERE
    key "file" { path = "id_app" }
  }
}
