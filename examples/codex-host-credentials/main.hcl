# A codex bottle that uses the host's codex login. At apply, bottleform
# reads ~/.codex/auth.json; the gateway gets the real token and the agent a
# placeholder auth.json that keeps only the token's expiry and account id.

bottle "codex" {
  image = "ghcr.io/acme/codex-agent:1.4"

  agent "codex" {
    forward_host_credentials = true
  }

  egress "proxy.golang.org" {}
  egress "sum.golang.org" {}

  env = {
    GOFLAGS = "-mod=mod"
  }

  prompt = <<-EOT
    You maintain the Go services of acme. Run the tests before you propose a change.
  EOT
}
