"""convert/onnx"""
