job "webapp" {
  datacenters = ["eu-west-1"]
  region      = "eu"

  meta {
    team = "frontend"
  }

  constraint {
    attribute = "${attr.cpu.arch}"
    value     = "amd64"
  }

  constraint {
    attribute = "${node.class}"
    operator  = "="
    value     = "web"
  }

  group "web" {
    network {
      port "http" {
        static = 18080
        to     = 8080
      }
    }

    reschedule {
      delay          = "30s"
      delay_function = "exponential"
      unlimited      = true
    }

    task "migrate" {
      driver = "docker"
      lifecycle {
        hook    = "prestart"
        sidecar = false
      }
      config {
        image   = "registry.example.com/webapp:2.3.1"
        command = "/app/migrate"
      }
      resources {
        cores  = 1
        memory = 128
      }
    }

    task "server" {
      driver = "docker"
      config {
        image = "registry.example.com/webapp:2.3.1"
        ports = ["http"]
        args  = ["--listen", ":8080"]
      }
      env {
        APP_ENV  = "production"
        APP_PORT = "8080"
      }
      template {
        data        = "SECRET={{ key \"webapp/secret\" }}"
        destination = "secrets/app.env"
        env         = true
      }
      resources {
        cores  = 2
        memory = 1024
      }
      service {
        name = "webapp"
        port = "http"
        check {
          type     = "http"
          path     = "/health"
          interval = "10s"
          timeout  = "3s"
        }
      }
    }
  }
}
