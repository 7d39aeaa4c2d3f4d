"""Doctor accounts: the e-mail address is the login name, and new accounts wait for staff approval."""

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone


def normalize_email_address(email: str) -> str:
    """One canonical spelling per address, so uniqueness and login ignore letter case."""
    return (email or "").strip().lower()


class UserManager(BaseUserManager):
    use_in_migrations = True

    def get_by_natural_key(self, username):
        return self.get(**{self.model.USERNAME_FIELD: normalize_email_address(username)})

    def _create_user(self, email, password, **extra_fields):
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=normalize_email_address(email), **extra_fields)
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        extra_fields.setdefault("is_active", True)
        if not extra_fields["is_staff"] or not extra_fields["is_superuser"]:
            raise ValueError("A superuser must have is_staff=True and is_superuser=True.")
        return self._create_user(email, password, **extra_fields)


# The one definition of "awaiting approval", for queries (accounts.selectors) and for one account
# (User.is_awaiting_approval): registered, never approved, not active. Staff accounts never wait; an account
# that was approved and later switched off is deactivated, not waiting.
AWAITING_APPROVAL = {"is_active": False, "approved_at": None, "is_staff": False}


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in: a doctor (registered, approved by staff) or a staff member."""

    email = models.EmailField(
        "e-mail address",
        unique=True,
        error_messages={"unique": "An account with this e-mail address already exists."},
    )
    full_name = models.CharField(max_length=200)
    licence_number = models.CharField(
        "medical licence number",
        max_length=50,
        blank=True,
        help_text="Required for doctors; staff accounts may leave it empty.",
    )
    hospital = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(
        "approved",
        default=False,
        help_text="Doctors can sign in only once a staff member has approved the account.",
    )
    is_staff = models.BooleanField(
        "staff status",
        default=False,
        help_text="Staff can sign in to the admin site.",
    )
    date_joined = models.DateTimeField(default=timezone.now)
    approved_at = models.DateTimeField(null=True, blank=True, editable=False)
    approved_by = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["full_name"]

    class Meta:
        verbose_name = "user"
        verbose_name_plural = "users"
        ordering = ["full_name", "email"]

    def __str__(self) -> str:
        return f"{self.full_name} <{self.email}>" if self.full_name else self.email

    def clean(self):
        super().clean()
        self.email = normalize_email_address(self.email)

    def get_full_name(self) -> str:
        return self.full_name

    def get_short_name(self) -> str:
        return self.full_name.split()[0] if self.full_name else self.email

    @property
    def is_awaiting_approval(self) -> bool:
        return all(getattr(self, field) == value for field, value in AWAITING_APPROVAL.items())


class DoctorRegistration(User):
    """The admin's page of registrations awaiting approval. Approving is its own permission here, so that
    approvers need no right to change accounts, which would let them edit anyone's, their own included."""

    class Meta:
        proxy = True
        verbose_name = "doctor awaiting approval"
        verbose_name_plural = "doctors awaiting approval"
        permissions = [("approve_doctor", "Can approve doctors' registrations")]
