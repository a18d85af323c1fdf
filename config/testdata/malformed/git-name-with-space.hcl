# Invalid git entry name
# letters, digits
bottle "a" {
  image = "x"
  git "a b" { # HERE
    upstream = "ssh://git@h/o/r.git"
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbJ2bkzcbxpH0rwcv+ZwqRpGrwGg5d3Ar2T1mmZ8YRn"
    key "file" { path = "id_app" }
  }
}
