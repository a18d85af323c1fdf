# Invalid egress host
# host alone
bottle "a" {
  image = "x"
  egress "https://api.github.com" {} # HERE
}
