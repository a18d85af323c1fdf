# Empty methods
# forwards no request
bottle "a" {
  image = "x"
  egress "gitea.example.test" {
    methods = [] # HERE
  }
}
