# Imported from bot-bottle by `bottleform import`. Read the comments, then run
# `bottleform validate` and `bottleform plan`.

secret "gitea_admin_token" {
  env = "GITEA_ADMIN_TOKEN"
}

bottle "pusher" {
  # From pusher.md.
  # bot-bottle's claude image: bottleform pulls no image, so build or tag it on this host.
  image = "bot-bottle-claude:latest"

  agent "claude" {}

  egress "gitea.acme.dev" {
    # pusher.md:23: gitea.acme.dev is a git upstream of the bottle, so the gateway forwards only GET, HEAD and OPTIONS to it, where bot-bottle forwarded every method but pushes; to let the agent write through the forge's API (around the git gate), add methods = ["GET", "HEAD", "POST", ...]
    # pusher.md:25: tls_passthrough: gitea.acme.dev is a git upstream of the bottle, and the gateway intercepts forge hosts so that writes cannot bypass the git gate; the route is intercepted
  }

  git "app" {
    upstream = "ssh://git@gitea.acme.dev:2222/acme/app.git"
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbJ2bkzcbxpH0rwcv+ZwqRpGrwGg5d3Ar2T1mmZ8YRn"
    # pusher.md:14: provisioned_key: bottleform needs the Gitea API's address, and https://gitea.acme.dev is a guess from the upstream's host; check it
    key "gitea" {
      api_url = "https://gitea.acme.dev"
      token   = secret.gitea_admin_token
    }
    # bot-bottle's gate pushed every ref that passed its scan; narrow this to what
    # the agent needs, as in ["refs/heads/agent/*"].
    push = ["refs/*"]
  }
  git "docs" {
    upstream = "ssh://git@github.com/acme/docs.git"
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    key "file" {
      path = "~/.ssh/docs_deploy_key"
    }
    # bot-bottle's gate pushed every ref that passed its scan; narrow this to what
    # the agent needs, as in ["refs/heads/agent/*"].
    push = ["refs/*"]
  }

  git_user {
    name  = "Pusher Bot"
    email = "pusher@acme.dev"
  }

  prompt = <<EOT
Push your work to a branch under agent/ and open a pull request.
EOT
}
