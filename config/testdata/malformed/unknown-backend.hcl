# Unknown backend
# "docker"
bottle "a" {
  image = "x"
  backend = "podman" # HERE
}
