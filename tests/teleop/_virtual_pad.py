"""SDL's virtual joystick (SDL_JoystickAttachVirtual, through ctypes against the SDL2 library
pygame bundles or links): a gamepad without hardware, driven axis by axis and button by button."""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os


def sdl_library():
    import pygame

    root = os.path.dirname(pygame.__file__)
    found = glob.glob(os.path.join(root, "..", "pygame.libs", "libSDL2-2*")) or \
        glob.glob(os.path.join(root, ".dylibs", "libSDL2*"))
    path = found[0] if found else ctypes.util.find_library("SDL2-2.0") or ctypes.util.find_library("SDL2")
    lib = ctypes.CDLL(path)  # the same library pygame loaded: dlopen returns the loaded instance
    lib.SDL_JoystickAttachVirtual.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.SDL_JoystickDetachVirtual.argtypes = [ctypes.c_int]
    lib.SDL_JoystickFromInstanceID.restype = ctypes.c_void_p
    lib.SDL_JoystickFromInstanceID.argtypes = [ctypes.c_int32]
    lib.SDL_JoystickSetVirtualAxis.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int16]
    lib.SDL_JoystickSetVirtualButton.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint8]
    lib.SDL_JoystickSetVirtualHat.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint8]
    lib.SDL_GetError.restype = ctypes.c_char_p
    return lib


class VirtualPad:
    """A pad with the Linux xpad layout's counts: 6 axes (all resting at 0: set a trigger to -1 for
    released), 11 buttons, 1 hat. Attach it, open the device under test, then `bind` to its instance id.
    Tests attach one pad at a time (its device index is then 0)."""

    HAT = {(0, 0): 0, (0, 1): 1, (1, 0): 2, (0, -1): 4, (-1, 0): 8}

    def __init__(self, naxes: int = 6, nbuttons: int = 11, nhats: int = 1):
        from robot_rl.teleop.gamepad import import_pygame

        self.pg = import_pygame()
        self.lib = sdl_library()
        self.index = self.lib.SDL_JoystickAttachVirtual(0, naxes, nbuttons, nhats)  # a plain joystick: axes rest at 0
        assert self.index >= 0, self.lib.SDL_GetError()
        self.pg.event.pump()
        self.ptr = None

    def bind(self, instance_id: int) -> None:
        """Drive the joystick the device opened (SDL's open handle for that instance)."""
        self.ptr = self.lib.SDL_JoystickFromInstanceID(instance_id)
        assert self.ptr, self.lib.SDL_GetError()

    def axis(self, i: int, value: float) -> None:
        self.lib.SDL_JoystickSetVirtualAxis(self.ptr, i, int(max(-32768, min(32767, round(value * 32768)))))

    def button(self, i: int, down: bool) -> None:
        self.lib.SDL_JoystickSetVirtualButton(self.ptr, i, int(down))

    def hat(self, x: int, y: int) -> None:
        self.lib.SDL_JoystickSetVirtualHat(self.ptr, 0, self.HAT[(x, y)])

    def detach(self) -> None:
        """Unplug it (SDL reports the removal on the next event pump)."""
        if self.index is not None:
            self.lib.SDL_JoystickDetachVirtual(self.index)
            self.index = None
            self.pg.event.pump()
