# Three bottles built on base: each adds only what it needs.

bottle "frontend" {
  extends = "base"
  prompt  = file("prompts/frontend.md")

  egress "cdn.jsdelivr.net" {}
}

bottle "backend" {
  extends = "base"
  prompt  = file("prompts/backend.md")

  egress "proxy.golang.org" {}
  egress "sum.golang.org" {}

  resources {
    cpus = 2
  }
}

bottle "docs" {
  extends = "base"

  env = {
    TZ   = "Europe/Paris"
    LANG = "fr_FR.UTF-8"
  }

  supervise = false
}
