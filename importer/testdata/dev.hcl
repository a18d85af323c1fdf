# Imported from bot-bottle by `bottleform import`. Read the comments, then run
# `bottleform validate` and `bottleform plan`.

secret "claude_code_oauth_token" {
  env = "CLAUDE_CODE_OAUTH_TOKEN"
}

secret "db_password" {
  prompt = "Value of DB_PASSWORD"
}

secret "stripe_key" {
  prompt = "Stripe test-mode secret key"
}

bottle "dev" {
  # From dev.md.
  # bot-bottle's claude image: bottleform pulls no image, so build or tag it on this host.
  image = "bot-bottle-claude:latest"

  agent "claude" {
    auth_token = secret.claude_code_oauth_token
  }

  env = {
    DB_PASSWORD = secret.db_password
    GREETING    = "hello $${USER}"
    HOST_USER   = host_env("USER")
    LOG_LEVEL   = "debug"
    NPM_TOKEN   = host_env("NPM_TOKEN")
    PRICE       = "$5"
    RETRIES     = "3"
    STRIPE_KEY  = secret.stripe_key
    TZ          = "UTC"
  }

  supervise = true

  prompt = <<EOT1
You are the dev agent of acme. Run the tests before you propose a change.

Templates in this repository look like $${name} and %%{ if x }; leave them as
they are.
EOT
The line above is not the end of this prompt.
EOT1
}
