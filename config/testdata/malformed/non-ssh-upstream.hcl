# Invalid upstream
# SSH only
bottle "a" {
  image = "x"
  git "app" {
    upstream = "https://github.com/o/r.git" # HERE
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbJ2bkzcbxpH0rwcv+ZwqRpGrwGg5d3Ar2T1mmZ8YRn"
    key "file" { path = "id_app" }
  }
}
