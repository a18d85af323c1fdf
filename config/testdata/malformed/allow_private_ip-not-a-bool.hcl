# Wrong type
# bool
bottle "a" {
  image = "x"
  egress "git.internal" {
    allow_private_ip = "yes please" # HERE
  }
}
