# Unknown parent bottle
# Did you mean "base"?
bottle "base" {
  abstract = true
  image = "x"
}
bottle "a" {
  extends = "bsae" # HERE
}
