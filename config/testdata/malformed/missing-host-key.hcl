# Missing host_key
# never trusts a host key on first use
bottle "a" {
  image = "x"
  git "app" { # HERE
    upstream = "ssh://git@h/o/r.git"
    key "file" { path = "id_app" }
  }
}
