print("bitnet-train")
