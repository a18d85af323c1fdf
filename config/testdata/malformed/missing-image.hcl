# Missing image
# image =
bottle "a" { # HERE
  agent "claude" {}
}
