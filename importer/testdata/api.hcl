# Imported from bot-bottle by `bottleform import`. Read the comments, then run
# `bottleform validate` and `bottleform plan`.

secret "gitea_token" {
  env = "GITEA_TOKEN"
}

secret "github_token" {
  env = "GITHUB_TOKEN"
}

bottle "api" {
  # From api.md.
  # bot-bottle's codex image: bottleform pulls no image, so build or tag it on this host.
  image = "bot-bottle-codex:latest"

  agent "codex" {
    forward_host_credentials = true
  }

  egress "api.github.com" {
    auth {
      scheme = "Bearer"
      token  = secret.github_token
    }
    paths = ["/repos/acme/app/", "/user"]
  }
  egress "artifacts.acme.internal" {
    # api.md:29: ssrf_ip_allowlist 10.20.0.0/16, 192.168.7.0/24: allow_private_ip admits every private address (RFC 1918, unique local, CGNAT) the host resolves to, not only these ranges
    allow_private_ip = true
  }
  egress "files.pythonhosted.org" {
    tls = "passthrough"
  }
  egress "gitea.acme.dev" {
    auth {
      scheme = "token"
      token  = secret.gitea_token
    }
  }
  egress "pypi.org" {}
  egress "registry.npmjs.org" {
    # api.md:26: tls_passthrough: in bot-bottle it only kept pipelock from rescanning; bottleform's gateway must decrypt to inject a token or check paths and methods, so the route is intercepted
    paths = ["/"]
  }

  supervise = false

  prompt = <<EOT
Keep the Python dependencies current.
EOT
}
