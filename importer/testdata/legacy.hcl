# Imported from bot-bottle by `bottleform import`. Read the comments, then run
# `bottleform validate` and `bottleform plan`.

bottle "legacy" {
  # From legacy.md.
  # legacy.md:8: unknown key "superivse" (did you mean "supervise"?): not imported
  # legacy.md:9: unknown key "timeout": not imported
  # legacy.md:5: agent_provider.dockerfile "Dockerfile.custom": bottleform runs an image and builds none; build it (docker build -f Dockerfile.custom -t NAME .) and set image = "NAME"
  image = "bot-bottle-claude:latest"

  agent "claude" {
    # legacy.md:7: unknown key "image_tag": not imported
    # legacy.md:6: forward_host_credentials: bottleform forwards host credentials for codex only; give claude a token with auth_token instead; not imported
  }

  # legacy.md:12: env CLAUDE_CODE_OAUTH_TOKEN: bottleform sets it in the agent itself (give claude its token with agent_provider.auth_token: the gateway injects it); not imported
  # legacy.md:11: env HTTPS_PROXY: bottleform sets it in the agent itself; not imported
  env = {
    EDITOR = "vim"
  }

  egress "api.anthropic.com" {
    # legacy.md:27: role "claude_code_oauth": routes take no role (bot-bottle refuses every role too); provider routes come from the agent block; not imported
  }
  egress "hooks.slack.com" {
    # legacy.md:29: dlp: the gateway has no per-route DLP detectors (pushes are scanned by the git gate); not imported
    methods = ["POST"]
    paths   = ["/services/T000/"]
  }
  # legacy.md:36: egress route internal.acme.dev: its path match of type "regex" (line 38) cannot be written as a prefix, so the route is left out rather than granted wider; grant it by hand
  egress "metrics.acme.dev" {
    # legacy.md:43: ssrf_ip_allowlist 127.0.0.1/32: not a private range; the gateway never admits loopback, link-local or metadata addresses, and public ones need no allowance; not imported
  }

  git "tools" {
    # legacy.md:22: extra_hosts: the git gate resolves upstreams with DNS and takes no host entries; not imported
    upstream = "ssh://git@git.acme.dev/acme/tools.git"
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbJ2bkzcbxpH0rwcv+ZwqRpGrwGg5d3Ar2T1mmZ8YRn"
    # legacy.md:20: identity "keys/tools_ed25519" is relative; bottleform reads it relative to the directory of the definitions
    key "file" {
      path = "keys/tools_ed25519"
    }
    # bot-bottle's gate pushed every ref that passed its scan; narrow this to what
    # the agent needs, as in ["refs/heads/agent/*"].
    push = ["refs/*"]
  }

  # legacy.md:15: git-gate.user has no name here or in a bottle it extends, and git_user needs both name and email; add it and write the block; not imported
}
