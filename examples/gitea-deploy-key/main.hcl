# A bottle that clones and pushes acme/app through the git gate. bottleform
# mints a deploy key on the Gitea server at apply and revokes it at destroy;
# the agent never holds a key.

secret "gitea_admin" {
  env = "GITEA_TOKEN"
}

bottle "pusher" {
  image = "ghcr.io/acme/claude-agent:2.1"

  agent "claude" {}

  git "app" {
    upstream = "ssh://git@gitea.acme.dev:2222/acme/app.git"
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbJ2bkzcbxpH0rwcv+ZwqRpGrwGg5d3Ar2T1mmZ8YRn"
    key "gitea" {
      api_url = "https://gitea.acme.dev"
      token   = secret.gitea_admin
    }
    push = ["refs/heads/agent/*", "+refs/heads/scratch/*"]
  }

  git_user {
    name  = "Pusher Bot"
    email = "pusher@acme.dev"
  }
}
