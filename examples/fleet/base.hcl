# What every bottle of the fleet shares. abstract: it is a template for
# extends and is not brought up itself.

secret "claude" {
  env = "CLAUDE_CODE_OAUTH_TOKEN"
}

bottle "base" {
  abstract = true
  image    = "ghcr.io/acme/claude-agent:2.1"

  agent "claude" {
    auth_token = secret.claude
  }

  env = {
    TZ = "UTC"
  }

  egress "registry.npmjs.org" {}

  supervise = true

  resources {
    cpus   = 1
    memory = "2GiB"
  }
}
