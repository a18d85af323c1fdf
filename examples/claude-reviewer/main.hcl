# A code-review bottle that uses every block of the language.

secret "claude" {
  env = "CLAUDE_CODE_OAUTH_TOKEN"
}

secret "github" {
  env = "GITHUB_TOKEN"
}

secret "gitea_admin" {
  env = "GITEA_TOKEN"
}

secret "db" {
  prompt = "Staging DB password"
}

bottle "base" {
  abstract = true
  backend  = "docker"
  image    = "ghcr.io/acme/claude-agent:2.1"

  egress "registry.npmjs.org" {}
}

bottle "reviewer" {
  extends = "base"

  agent "claude" {
    auth_token = secret.claude
  }

  env = {
    TZ          = "UTC"
    HOST_USER   = host_env("USER")
    DB_PASSWORD = secret.db
  }

  egress "api.github.com" {
    auth {
      scheme = "Bearer"
      token  = secret.github
    }
    paths = ["/repos/acme/app/"]
  }
  egress "files.pythonhosted.org" {
    tls = "passthrough"
  }
  egress "artifacts.acme.internal" {
    allow_private_ip = true # an internal mirror on the company network
  }
  upstream_ca = file("certs/acme-root.pem") # the gateway trusts the company CA upstream

  git "app" {
    upstream = "ssh://git@gitea.acme.dev:2222/acme/app.git"
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbJ2bkzcbxpH0rwcv+ZwqRpGrwGg5d3Ar2T1mmZ8YRn"
    key "gitea" {
      api_url = "https://gitea.acme.dev"
      token   = secret.gitea_admin
    }
    push = ["refs/heads/agent/*"]
  }
  git_user {
    name  = "Review Bot"
    email = "bot@acme.dev"
  }

  supervise = true
  mcp "docs" {
    url = "https://mcp.acme.dev/mcp"
  }

  prompt = file("prompts/reviewer.md")
  skills = ["skills/code-review"]
  resources {
    cpus   = 2
    memory = "4GiB"
  }
}
