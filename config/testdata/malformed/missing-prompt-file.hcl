# Cannot read prompt file
# relative to the file
bottle "a" {
  image = "x"
  prompt = file("prompts/nope.md") # HERE
}
