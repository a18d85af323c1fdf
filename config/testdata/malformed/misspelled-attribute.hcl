# Unsupported argument
# Did you mean "image"?
bottle "a" {
  imgae = "x" # HERE
}
