# Imported from bot-bottle by `bottleform import`. Read the comments, then run
# `bottleform validate` and `bottleform plan`.

secret "claude_token" {
  env = "CLAUDE_TOKEN"
}

secret "db_password" {
  prompt = "Staging DB password"
}

secret "github_token" {
  env = "GITHUB_TOKEN"
}

bottle "base" {
  # From base.md.
  # bot-bottle ran a bottle only under an agent; remove abstract to bring it up alone.
  abstract = true
  # bot-bottle's claude image: bottleform pulls no image, so build or tag it on this host.
  image = "bot-bottle-claude:latest"

  agent "claude" {
    auth_token = secret.claude_token
  }

  env = {
    TZ = "UTC"
  }

  egress "registry.npmjs.org" {}

  git_user {
    name  = "Fleet Bot"
    email = "fleet@acme.dev"
  }
}

bottle "reviewer" {
  # From reviewer.md.
  # bot-bottle ran a bottle only under an agent; remove abstract to bring it up alone.
  abstract = true
  extends  = "base"
  # bottleform merges env by name, and egress and git by host and name, with base's.

  env = {
    DB_PASSWORD  = secret.db_password
    REVIEW_DEPTH = "thorough"
  }

  egress "api.github.com" {
    auth {
      scheme = "Bearer"
      token  = secret.github_token
    }
    paths = ["/repos/acme/"]
  }

  supervise = true

  prompt = <<EOT
Review the open pull requests of acme/app.
EOT
}

bottle "triage" {
  # From triage.md, a bot-bottle agent on the bottle reviewer.
  # Claude Code subagent fields, which bot-bottle ignored too:
  #   name: triage
  #   description: Sorts new issues into queues.
  #   model: opus
  #   color: blue
  extends = "reviewer"

  git_user {
    name  = "Fleet Bot"
    email = "triage@acme.dev"
  }

  # triage.md:10: skills triage, labels: bot-bottle found skills by name on the host, bottleform takes their directories relative to the definitions; copy them here and add skills = ["skills/triage", "skills/labels"]; not imported

  prompt = <<EOT
You triage the new issues of acme/app: label them, and ask for what is missing.
EOT
}
