# Invalid memory
# unknown unit
bottle "a" {
  image = "x"
  resources {
    memory = "4 parsecs" # HERE
  }
}
