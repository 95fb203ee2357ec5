job "render" {
  type = "batch"

  group "frames" {
    count = 3

    volume "scratch" {
      type   = "host"
      source = "render-scratch"
    }

    task "blender" {
      driver = "docker"
      config {
        image = "linuxserver/blender:4.2.0"
        args  = ["-b", "/scene/scene.blend", "-a"]
      }
      volume_mount {
        volume      = "scratch"
        destination = "/scratch"
      }
      resources {
        cores  = 4
        memory = 8192
        device "nvidia/gpu" {
          count = 1
        }
      }
      restart {
        attempts = 1
        delay    = "10s"
        mode     = "fail"
      }
    }

    task "uploader" {
      driver = "exec"
      config {
        command = "/usr/local/bin/upload"
      }
    }
  }
}
