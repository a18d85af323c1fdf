# The smallest useful bottle: a claude agent that may reach only its own API
# and the Debian package mirror. Bring it up with `bottleform apply`.

bottle "quickstart" {
  image = "bottleform-agent:test"

  agent "claude" {}

  egress "deb.debian.org" {}

  prompt    = "You are working in a bottle. Ask through supervise for anything you lack.\n"
  supervise = true
}
