# Duplicate egress block
# only one
bottle "a" {
  image = "x"
  egress "api.github.com" {}
  egress "api.github.com" {} # HERE
}
