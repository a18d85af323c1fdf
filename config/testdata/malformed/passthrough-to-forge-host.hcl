# Passthrough to a forge host
# bypassing the git gate's push policy and secret scan
bottle "a" {
  image = "x"
  git "app" {
    upstream = "ssh://git@Gitea.Example.Test:2222/owner/repo.git"
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbJ2bkzcbxpH0rwcv+ZwqRpGrwGg5d3Ar2T1mmZ8YRn"
    key "file" { path = "id_app" }
  }
  egress "gitea.example.test" {
    tls = "passthrough" # HERE
  }
}
