"""`make dataset`: download a freely licensed landmark photo library into `images/<class_id>/`.

Sources: Wikimedia Commons (free licences only) and, when `PIXABAY_API_KEY` is set, Pixabay. Every file is
verified before it is kept, and its attribution is recorded in the class folder's `manifest.json`.
"""
