# Invalid path prefix
# start with '/'
bottle "a" {
  image = "x"
  egress "api.github.com" {
    paths = ["repos/"] # HERE
  }
}
