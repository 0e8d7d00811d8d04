"""I/O at the edges: drop zones (local directory, S3, FTP/SFTP), mail, outbound delivery."""
