"""Model helpers shared by several stages (dlib landmarks, the MediaPipe mesh)."""
