# Invalid bottle name
# "my-bottle"
bottle "My_Bottle" { # HERE
  image = "x"
}
