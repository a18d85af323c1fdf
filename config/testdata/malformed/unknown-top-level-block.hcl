# Unsupported block type
# Did you mean "bottle"?
botle "a" { # HERE
  image = "x"
}
