# Invalid bottle name
# ^[a-z][a-z0-9-]*$
bottle "9x" { # HERE
  image = "x"
}
