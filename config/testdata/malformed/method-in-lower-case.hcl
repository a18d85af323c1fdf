# Invalid method
# methods are written in upper case: "POST"
bottle "a" {
  image = "x"
  egress "gitea.example.test" {
    methods = ["GET", "post"] # HERE
  }
}
