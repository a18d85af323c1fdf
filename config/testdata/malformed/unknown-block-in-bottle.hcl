# Unsupported block type
# Did you mean "egress"?
bottle "a" {
  image = "x"
  egres "api.github.com" {} # HERE
}
