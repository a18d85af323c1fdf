# Skill directory not found
# create it
bottle "a" {
  image = "x"
  skills = ["skills/nope"] # HERE
}
