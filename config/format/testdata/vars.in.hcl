guest_dir="/g"
out   = "/o"
   name = "kiln"
