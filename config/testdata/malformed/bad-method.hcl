# Invalid method
# is not an HTTP method
bottle "a" {
  image = "x"
  egress "gitea.example.test" {
    methods = [
      "GET",
      "PO ST", # HERE
    ]
  }
}
