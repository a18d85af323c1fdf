# Duplicate bottle
# unique
bottle "a" {
  image = "x"
}
bottle "a" { # HERE
  image = "y"
}
