# methods need interception
# passthrough
bottle "a" {
  image = "x"
  egress "gitea.example.test" {
    tls = "passthrough"
    methods = ["GET"] # HERE
  }
}
