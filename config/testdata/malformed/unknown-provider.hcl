# Unknown agent provider
# Did you mean "claude"?
bottle "a" {
  image = "x"
  agent "claud" {} # HERE
}
