# A secret needs exactly one source
# exactly one of
secret "s" {
  env = "A"
  file = "x" # HERE
}
bottle "a" {
  image = "x"
}
